//! Paths into JSON values (`user.emails.0`): their segments and the lookup.

use std::fmt;

use serde_json::Value;

/// One segment of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// An object key (`[A-Za-z0-9_-]+`, not all digits).
    Key(String),
    /// An all-digit segment: an array index, or on an object the key spelled
    /// with the same digits.
    Index(usize),
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Key(key) => f.write_str(key),
            Segment::Index(index) => write!(f, "{index}"),
        }
    }
}

/// A validated, possibly empty, dot-separated path into a JSON value.
///
/// Empty means "the whole value" (`{{input}}`, `{{steps.ID.output}}`).
/// Displays as its segments joined by `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Path(Box<[Segment]>);

impl Path {
    /// Only the parser builds paths, so every path holds valid segments.
    pub(crate) fn new(segments: Vec<Segment>) -> Self {
        Path(segments.into_boxed_slice())
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Whether the path has no segments (it designates the whole value).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at this path inside `value`, or `None` if any segment is
    /// missing (absent key, index out of range, or a step into a value that
    /// is neither an object nor an array).
    pub fn lookup<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let mut current = value;
        for segment in self.0.iter() {
            current = match (segment, current) {
                (Segment::Key(key), Value::Object(map)) => map.get(key.as_str())?,
                (Segment::Index(index), Value::Array(items)) => items.get(*index)?,
                // Objects with numeric keys (status code maps...) stay
                // reachable; the parser rejects leading zeros, so the digits
                // round-trip exactly.
                (Segment::Index(index), Value::Object(map)) => map.get(&index.to_string())?,
                _ => return None,
            };
        }
        Some(current)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{segment}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(segments: &[Segment]) -> Path {
        Path::new(segments.to_vec())
    }

    #[test]
    fn lookup_walks_objects_and_arrays() {
        let value = json!({"items": [{"name": "a"}, {"name": "b"}]});
        let p = path(&[
            Segment::Key("items".into()),
            Segment::Index(1),
            Segment::Key("name".into()),
        ]);
        assert_eq!(p.lookup(&value), Some(&json!("b")));
        assert_eq!(p.to_string(), "items.1.name");
    }

    #[test]
    fn index_on_object_uses_digit_key() {
        let value = json!({"200": "ok"});
        assert_eq!(path(&[Segment::Index(200)]).lookup(&value), Some(&json!("ok")));
    }

    #[test]
    fn lookup_misses() {
        let value = json!({"a": [1], "s": "text", "n": null});
        assert_eq!(path(&[Segment::Key("b".into())]).lookup(&value), None);
        assert_eq!(
            path(&[Segment::Key("a".into()), Segment::Index(1)]).lookup(&value),
            None
        );
        assert_eq!(
            path(&[Segment::Key("s".into()), Segment::Key("x".into())]).lookup(&value),
            None
        );
        // A present null is found, not missing.
        assert_eq!(
            path(&[Segment::Key("n".into())]).lookup(&value),
            Some(&Value::Null)
        );
        assert_eq!(Path::default().lookup(&value), Some(&value));
    }
}
