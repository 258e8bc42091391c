//! Reading response bodies with a size cap.

use bytes::{Bytes, BytesMut};
use reqwest::Response;

use crate::error::EgressError;

/// Default cap for stored response bodies: 64 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads at most `max_bytes` of `resp`'s body.
///
/// Returns the bytes read and whether the body was truncated (it had more
/// than `max_bytes`). Reading stops as soon as the cap is exceeded; the rest
/// is never buffered and the connection is dropped. Errors while reading
/// (including the client's overall timeout) are mapped like request errors.
pub async fn read_body_capped(mut resp: Response, max_bytes: usize) -> Result<(Bytes, bool), EgressError> {
    let host = resp.url().host_str().unwrap_or_default().to_owned();
    let hint = resp
        .content_length()
        .map_or(8 * 1024, |len| usize::try_from(len).unwrap_or(usize::MAX));
    let mut buf = BytesMut::with_capacity(hint.min(max_bytes));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| EgressError::from_reqwest(e, &host))?
    {
        let room = max_bytes - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf.freeze(), true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), false))
}
