//! List paging (spec §1): `page` (default 1), `limit` (default 20, clamped to 1..=100), and
//! `offset`, which wins over `page` when both are given.

use crate::store::PageRequest;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

/// Resolved paging: what the response reports and what the store is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: i64,
    pub limit: i64,
    pub offset: i64,
}

impl Paging {
    /// Resolves the three optional query parameters.
    pub fn new(page: Option<i64>, limit: Option<i64>, offset: Option<i64>) -> Self {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        match offset {
            Some(offset) => {
                let offset = offset.max(0);
                Paging {
                    page: offset / limit + 1,
                    limit,
                    offset,
                }
            }
            None => {
                let page = page.unwrap_or(1).clamp(1, i64::MAX / MAX_LIMIT);
                Paging {
                    page,
                    limit,
                    offset: (page - 1) * limit,
                }
            }
        }
    }

    pub fn request(&self) -> PageRequest {
        PageRequest {
            offset: self.offset,
            limit: self.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(page: Option<i64>, limit: Option<i64>, offset: Option<i64>) -> Paging {
        Paging::new(page, limit, offset)
    }

    #[test]
    fn paging_defaults_clamps_and_lets_offset_win() {
        assert_eq!(
            p(None, None, None),
            Paging {
                page: 1,
                limit: 20,
                offset: 0
            }
        );
        assert_eq!(
            p(Some(3), Some(10), None),
            Paging {
                page: 3,
                limit: 10,
                offset: 20
            }
        );
        assert_eq!(p(None, Some(0), None).limit, 1);
        assert_eq!(p(None, Some(1000), None).limit, 100);
        assert_eq!(p(Some(0), None, None).page, 1);
        assert_eq!(
            p(Some(5), Some(10), Some(25)),
            Paging {
                page: 3,
                limit: 10,
                offset: 25
            }
        );
        assert_eq!(p(None, None, Some(-4)).offset, 0);
        assert!(p(Some(i64::MAX), Some(100), None).offset > 0, "no overflow");
    }
}
