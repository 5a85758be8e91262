//! Protocol version negotiation (docs/protocol.md, Version negotiation) and the thresholds that
//! select behaviour.

use std::fmt;

use serde_json::Value;

use super::json::{py_str, RpcError};

/// A protocol version as a tuple of integers. Comparison is lexicographic, and a tuple is
/// smaller than any longer tuple it prefixes (`1.7 < 1.7.0`), as in Python.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(pub Vec<u32>);

impl ProtocolVersion {
    /// The oldest version served.
    pub fn min() -> Self {
        ProtocolVersion(vec![1, 4])
    }

    /// The newest version served.
    pub fn max() -> Self {
        ProtocolVersion(vec![1, 7, 0])
    }

    /// A version from its parts.
    pub fn new(parts: &[u32]) -> Self {
        ProtocolVersion(parts.to_vec())
    }

    /// Dot-separated integers; anything else is `(0,)`, which no range accepts.
    pub fn parse(value: &Value) -> Self {
        let parsed = value.as_str().and_then(|s| {
            s.split('.')
                .map(|p| p.trim().parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()
        });
        ProtocolVersion(parsed.unwrap_or_else(|| vec![0]))
    }

    /// Whether the version is at least `parts`.
    pub fn at_least(&self, parts: &[u32]) -> bool {
        self.0.as_slice() >= parts
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        if parts.len() == 1 {
            write!(f, "{}.0", parts[0])
        } else {
            f.write_str(&parts.join("."))
        }
    }
}

/// Chooses the version for a client's `protocol_version` argument (absent or null means
/// `"1.4"`), or the error that ends the connection.
pub fn negotiate(requested: Option<&Value>) -> Result<ProtocolVersion, RpcError> {
    let (cmin, cmax) = match requested {
        None | Some(Value::Null) => (ProtocolVersion::min(), ProtocolVersion::min()),
        Some(Value::Array(items)) if items.len() == 2 => (
            ProtocolVersion::parse(&items[0]),
            ProtocolVersion::parse(&items[1]),
        ),
        Some(other) => {
            let v = ProtocolVersion::parse(other);
            (v.clone(), v)
        }
    };
    let version = cmax.min(ProtocolVersion::max());
    let floor = cmin.max(ProtocolVersion::min());
    if version < floor || version.0 == [0] {
        let shown = requested.map_or_else(|| "None".to_string(), py_str);
        return Err(RpcError::bad_request(format!(
            "unsupported protocol version: {shown}"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> String {
        negotiate(Some(&v)).expect("negotiates").to_string()
    }

    fn err(v: Value) -> String {
        negotiate(Some(&v)).expect_err("refused").message
    }

    #[test]
    fn negotiation_table_of_the_protocol() {
        assert_eq!(negotiate(None).unwrap().to_string(), "1.4");
        assert_eq!(ok(json!(null)), "1.4");
        assert_eq!(ok(json!("1.4")), "1.4");
        assert_eq!(ok(json!("1.4.2")), "1.4.2");
        assert_eq!(ok(json!("1.5")), "1.5");
        assert_eq!(ok(json!("1.6")), "1.6");
        assert_eq!(ok(json!("1.7")), "1.7");
        assert_eq!(ok(json!("1.04")), "1.4");
        assert_eq!(ok(json!(["1.4", "1.7"])), "1.7");
        assert_eq!(ok(json!(["1.4", "1.8"])), "1.7.0");
        assert_eq!(ok(json!(["1.4", "2.0"])), "1.7.0");
        assert_eq!(err(json!("1.8")), "unsupported protocol version: 1.8");
        assert_eq!(err(json!("1.3")), "unsupported protocol version: 1.3");
        assert_eq!(
            err(json!(["1.7.1", "1.8"])),
            "unsupported protocol version: ['1.7.1', '1.8']"
        );
        assert_eq!(err(json!(1.4)), "unsupported protocol version: 1.4");
        assert_eq!(err(json!(["1.4"])), "unsupported protocol version: ['1.4']");
        assert_eq!(err(json!("1.x")), "unsupported protocol version: 1.x");
    }

    #[test]
    fn prefix_tuples_are_smaller() {
        assert!(ProtocolVersion::new(&[1, 7]) < ProtocolVersion::new(&[1, 7, 0]));
        assert!(ProtocolVersion::new(&[1, 4, 2]).at_least(&[1, 4, 2]));
        assert!(!ProtocolVersion::new(&[1, 4, 1]).at_least(&[1, 4, 2]));
        assert!(ProtocolVersion::new(&[1, 5]).at_least(&[1, 4, 2]));
    }
}
