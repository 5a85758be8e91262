//! JSON details the wire depends on: the error object and its codes (docs/protocol.md, Error
//! object and codes), compact serialisation with ElectrumX's float spelling (its Units) and
//! ASCII-only strings (its Framing), and the Python-style rendering of values inside error texts.

use std::io;

use serde::Serialize;
use serde_json::Value;

/// Semantic or validation failure of a handler.
pub const BAD_REQUEST: i64 = 1;
/// The node failed.
pub const DAEMON_ERROR: i64 = 2;
/// A script's confirmed history is over the limit (docs/protocol.md, History size).
pub const HISTORY_TOO_LONG: i64 = 10001;
/// Unparsable JSON or bytes that are not UTF-8.
pub const PARSE_ERROR: i64 = -32700;
/// A malformed envelope, or an oversized response.
pub const INVALID_REQUEST: i64 = -32600;
/// Unknown method (or one of another protocol version).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Arity and parameter-name errors.
pub const INVALID_ARGS: i64 = -32602;
/// A handler failed unexpectedly.
pub const INTERNAL_ERROR: i64 = -32603;
/// The session's cost reached the hard limit; the connection closes after the reply.
pub const EXCESSIVE_RESOURCE_USAGE: i64 = -101;
/// The handler ran past the request timeout.
pub const SERVER_BUSY: i64 = -102;

/// A JSON-RPC error as sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    /// the code (docs/protocol.md, Error object and codes)
    pub code: i64,
    /// the exact text
    pub message: String,
}

impl RpcError {
    /// An error with `code`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// Code 1.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(BAD_REQUEST, message)
    }

    /// -32602.
    pub fn invalid_args(message: impl Into<String>) -> Self {
        Self::new(INVALID_ARGS, message)
    }

    /// The error object, without a `data` member (ElectrumX never sends one).
    pub fn to_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("code".into(), Value::from(self.code));
        map.insert("message".into(), Value::from(self.message.clone()));
        Value::Object(map)
    }
}

/// Compact JSON with Python's float spelling and `\uXXXX` escapes for non-ASCII text, as
/// ElectrumX writes it.
pub fn to_wire(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, WireFormatter);
    // Serialising a Value into a Vec cannot fail: no I/O error, no non-string map keys.
    value
        .serialize(&mut ser)
        .expect("serialising a JSON value into memory cannot fail");
    out
}

struct WireFormatter;

impl serde_json::ser::Formatter for WireFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        writer.write_all(python_float(f64::from(value)).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut buf = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut buf) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in positional notation for
/// decimal exponents -4..16 and scientific notation (`1e-05`, `1.5e+16`) otherwise.
pub fn python_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-5".
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else if exp + 1 >= n {
            format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
        } else {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// A JSON value as Python's `str()` would show it inside an f-string: strings bare at the top
/// level, `None`/`True`/`False`, lists and dicts in Python syntax.
pub fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a JSON value.
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => python_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

fn py_str_repr(s: &str) -> String {
    // Python prefers single quotes unless the text contains one and no double quote.
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `1234567` → `1,234,567`, as ElectrumX formats numbers in messages.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_are_spelled_like_python() {
        for (v, s) in [
            (0.00001, "1e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (5.0, "5.0"),
            (20.5, "20.5"),
            (1e16, "1e+16"),
            (123456789012345.0, "123456789012345.0"),
            (-0.5, "-0.5"),
            (2.5e-7, "2.5e-07"),
            (0.0, "0.0"),
        ] {
            assert_eq!(python_float(v), s, "{v}");
        }
        assert_eq!(
            to_wire(&json!({"a": 1e-5, "b": [5.0, 1], "c": "é"})),
            br#"{"a":1e-05,"b":[5.0,1],"c":"\u00e9"}"#.to_vec()
        );
    }

    #[test]
    fn values_render_like_python() {
        assert_eq!(py_str(&json!("abc")), "abc");
        assert_eq!(py_str(&json!(["1.4", "1.8"])), "['1.4', '1.8']");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(1.5)), "1.5");
        assert_eq!(py_str(&json!({"a": [1, false]})), "{'a': [1, False]}");
        assert_eq!(py_repr(&json!("it's")), "\"it's\"");
    }

    /// Found by fuzz/ `jsonrpc_session`: a request id like `1.8446744073710954e+20` was read
    /// one unit in the last place off and so echoed as another number. Ids must come back as
    /// sent, as a Python server reads and writes them.
    #[test]
    fn float_ids_are_read_exactly() {
        for text in [
            "1.8446744073710954e+20",
            "184467440737109551616",
            "2.2250738585072014e-308",
            "0.30000000000000004",
            "9007199254740993.0",
            "1.7976931348623157e+308",
        ] {
            let value: Value = serde_json::from_str(text).expect("a number");
            let exact: f64 = text.parse().expect("a float");
            assert_eq!(value.as_f64(), Some(exact), "{text}");
            let echoed: f64 = String::from_utf8(to_wire(&value))
                .expect("ASCII")
                .parse()
                .expect("a float");
            assert_eq!(echoed, exact, "{text}");
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(8_100_000), "8,100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(0), "0");
    }
}
