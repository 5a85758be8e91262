//! Binding positional or named parameters to a method's signature (docs/protocol.md, Requests
//! and parameters) and the validation rules (its Parameter validation), with their exact texts.

use serde_json::Value;

use super::json::{py_str, RpcError};
use crate::query::{Hash32, ScriptHash};

/// A method's parameter list.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// parameter names in positional order
    pub names: &'static [&'static str],
    /// how many leading parameters are required
    pub required: usize,
    /// whether extra positional and named arguments are accepted and ignored
    pub extras: bool,
}

impl Signature {
    /// A signature with `required` of `names` required and no extras.
    pub const fn new(names: &'static [&'static str], required: usize) -> Self {
        Signature {
            names,
            required,
            extras: false,
        }
    }
}

/// Arguments bound to a signature: one slot per declared parameter, `None` when omitted.
#[derive(Debug, Clone)]
pub struct Args(Vec<Option<Value>>);

impl Args {
    /// The argument in slot `i`, `None` when omitted.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i).and_then(Option::as_ref)
    }

    /// The argument in slot `i`, which the signature made required.
    pub fn req(&self, i: usize) -> &Value {
        static NULL: Value = Value::Null;
        self.get(i).unwrap_or(&NULL)
    }
}

/// Binds `params` (already checked to be an array or object) to `sig`.
pub fn bind(method: &str, sig: &Signature, params: &Value) -> Result<Args, RpcError> {
    let k = sig.names.len();
    match params {
        Value::Array(items) => {
            let n = items.len();
            if n < sig.required {
                return Err(RpcError::invalid_args(format!(
                    "{n} argument{} passed to method \"{method}\" but it requires {}",
                    if n == 1 { "" } else { "s" },
                    sig.required
                )));
            }
            if n > k && !sig.extras {
                return Err(RpcError::invalid_args(format!(
                    "{n} arguments passed to method {method} taking at most {k}"
                )));
            }
            let mut slots: Vec<Option<Value>> = items.iter().take(k).cloned().map(Some).collect();
            slots.resize(k, None);
            Ok(Args(slots))
        }
        Value::Object(map) => {
            // aiorpcX's order and wording: missing required names first, then names the
            // method does not take, each list sorted.
            let mut missing: Vec<&str> = sig.names[..sig.required]
                .iter()
                .copied()
                .filter(|name| !map.contains_key(*name))
                .collect();
            if !missing.is_empty() {
                missing.sort_unstable();
                return Err(RpcError::invalid_args(format!(
                    "method \"{method}\" requires {}",
                    quoted_list("parameter", &missing)
                )));
            }
            if !sig.extras {
                let mut unknown: Vec<&String> = map
                    .keys()
                    .filter(|key| !sig.names.contains(&key.as_str()))
                    .collect();
                if !unknown.is_empty() {
                    unknown.sort_unstable();
                    return Err(RpcError::invalid_args(format!(
                        "method \"{method}\" does not take {}",
                        quoted_list("parameter", &unknown)
                    )));
                }
            }
            Ok(Args(
                sig.names
                    .iter()
                    .map(|name| map.get(*name).cloned())
                    .collect(),
            ))
        }
        _ => Ok(Args(vec![None; k])),
    }
}

fn quoted_list<T: std::fmt::Display>(noun: &str, items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    let plural = if items.len() == 1 { "" } else { "s" };
    format!("{noun}{plural} {}", quoted.join(", "))
}

/// A non-negative integer with Python's `int()` coercion: numeric strings, floats (truncated
/// toward zero) and booleans pass. Values past `u64` saturate (they are out of any range).
pub fn non_negative_integer(value: &Value) -> Result<u64, RpcError> {
    let fail = || {
        RpcError::bad_request(format!(
            "{} should be a non-negative integer",
            py_str(value)
        ))
    };
    let n: i128 = match value {
        Value::Bool(b) => i128::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i128::from(i)
            } else if let Some(u) = n.as_u64() {
                i128::from(u)
            } else {
                let f = n.as_f64().ok_or_else(fail)?;
                if !f.is_finite() {
                    return Err(fail());
                }
                f.trunc() as i128
            }
        }
        Value::String(s) => parse_python_int(s).ok_or_else(fail)?,
        _ => return Err(fail()),
    };
    if n < 0 {
        return Err(fail());
    }
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

/// `int(str)`: optional surrounding whitespace, optional sign, decimal digits with single
/// underscores between them.
fn parse_python_int(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    // Saturate instead of failing: a huge number is still a number, just out of range.
    let v = clean.parse::<i128>().unwrap_or(i128::MAX);
    Some(if neg { -v } else { v })
}

/// A value that compares equal to `true` or `false` (so `1`, `0`, `1.0` pass).
pub fn boolean(name: &str, value: &Value) -> Result<bool, RpcError> {
    let fail = || RpcError::bad_request(format!("\"{name}\" must be a boolean"));
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Ok(true),
            Some(0.0) => Ok(false),
            _ => Err(fail()),
        },
        _ => Err(fail()),
    }
}

/// Python truthiness, for the few parameters ElectrumX does not type-check.
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// `bytes.fromhex`: pairs of hex digits, whitespace allowed between pairs.
fn loose_hex(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 2);
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(hi) = chars.next() else {
            return Some(out);
        };
        let lo = chars.next()?;
        let byte = (hi.to_digit(16)? << 4) | lo.to_digit(16)?;
        out.push(byte as u8);
    }
}

fn hash32_loose(value: &Value) -> Option<Hash32> {
    let bytes = loose_hex(value.as_str()?)?;
    let mut hash: Hash32 = bytes.try_into().ok()?;
    hash.reverse();
    Some(hash)
}

/// A script hash in display order (docs/protocol.md, Parameter validation), with the client's
/// spelling kept.
pub fn script_hash(value: &Value) -> Result<(ScriptHash, String), RpcError> {
    match (hash32_loose(value), value.as_str()) {
        (Some(h), Some(s)) => Ok((ScriptHash(h), s.to_string())),
        _ => Err(RpcError::bad_request(format!(
            "{} is not a valid script hash",
            py_str(value)
        ))),
    }
}

/// A transaction hash in display order; the internal-order hash.
pub fn tx_hash(value: &Value) -> Result<Hash32, RpcError> {
    hash32_loose(value).ok_or_else(|| {
        RpcError::bad_request(format!("{} should be a transaction hash", py_str(value)))
    })
}

/// A strict hex string: even length, hex digits only, empty allowed.
pub fn hex_blob(value: &Value) -> Result<Vec<u8>, RpcError> {
    value
        .as_str()
        .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| RpcError::bad_request(format!("{} should be a hex string", py_str(value))))
}

/// Hex digits of any length (the 1.7 `server.ping` `data`).
pub fn hex_odd(value: &Value) -> Result<(), RpcError> {
    match value.as_str() {
        Some(s) if s.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        _ => Err(RpcError::bad_request(format!(
            "{} should be a hex string",
            py_str(value)
        ))),
    }
}

/// A list of strict hex strings (`raw_txs`), returned as the strings.
pub fn hex_list(value: &Value) -> Result<Vec<String>, RpcError> {
    let items = value
        .as_array()
        .ok_or_else(|| RpcError::bad_request(format!("{} should be a list", py_str(value))))?;
    items
        .iter()
        .map(|item| hex_blob(item).map(|_| item.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HEADER: Signature = Signature::new(&["height", "cp_height"], 1);

    #[test]
    fn arity_and_name_errors_have_the_exact_texts() {
        let e = bind("blockchain.block.header", &HEADER, &json!([])).unwrap_err();
        assert_eq!(
            e.message,
            "0 arguments passed to method \"blockchain.block.header\" but it requires 1"
        );
        let two = Signature::new(&["a", "b", "c"], 3);
        let e = bind("m", &two, &json!([1])).unwrap_err();
        assert_eq!(
            e.message,
            "1 argument passed to method \"m\" but it requires 3"
        );
        let e = bind("blockchain.block.header", &HEADER, &json!([1, 2, 3, 4])).unwrap_err();
        assert_eq!(
            e.message,
            "4 arguments passed to method blockchain.block.header taking at most 2"
        );
        let e = bind("m", &HEADER, &json!({"height": 1, "x": 2})).unwrap_err();
        assert_eq!(e.message, "method \"m\" does not take parameter \"x\"");
        let e = bind("m", &HEADER, &json!({"height": 1, "x": 2, "y": 3})).unwrap_err();
        assert_eq!(
            e.message,
            "method \"m\" does not take parameters \"x\", \"y\""
        );
        let e = bind("m", &HEADER, &json!({"cp_height": 1})).unwrap_err();
        assert_eq!(e.message, "method \"m\" requires parameter \"height\"");
        // A wrong name for a required parameter: the missing one is named first (aiorpcX's
        // handler_invocation checks missing names before unknown ones).
        let e = bind("blockchain.block.header", &HEADER, &json!({"h": 1})).unwrap_err();
        assert_eq!(
            e.message,
            "method \"blockchain.block.header\" requires parameter \"height\""
        );
        // Both lists come sorted, as Python's sorted() gives them.
        let e = bind("m", &HEADER, &json!({"height": 1, "z": 2, "b": 3})).unwrap_err();
        assert_eq!(
            e.message,
            "method \"m\" does not take parameters \"b\", \"z\""
        );
        let three = Signature::new(&["tx_hash", "height", "cp"], 2);
        let e = bind("m", &three, &json!({})).unwrap_err();
        assert_eq!(
            e.message,
            "method \"m\" requires parameters \"height\", \"tx_hash\""
        );
        assert_eq!(e.code, -32602);
        let args = bind("m", &HEADER, &json!({"cp_height": 1, "height": 2})).unwrap();
        assert_eq!(args.get(0), Some(&json!(2)));
        assert_eq!(args.get(1), Some(&json!(1)));
    }

    #[test]
    fn integers_are_coerced_like_python() {
        for (v, n) in [
            (json!(5), 5),
            (json!("12"), 12),
            (json!(" 7 "), 7),
            (json!(5.9), 5),
            (json!(-0.5), 0),
            (json!(true), 1),
        ] {
            assert_eq!(non_negative_integer(&v).unwrap(), n, "{v}");
        }
        for (v, text) in [
            (json!("-1"), "-1 should be a non-negative integer"),
            (json!(-1), "-1 should be a non-negative integer"),
            (json!(null), "None should be a non-negative integer"),
            (json!("1.5"), "1.5 should be a non-negative integer"),
            (json!([1]), "[1] should be a non-negative integer"),
        ] {
            assert_eq!(non_negative_integer(&v).unwrap_err().message, text);
        }
    }

    #[test]
    fn hex_rules() {
        let good = "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161";
        assert!(script_hash(&json!(good)).is_ok());
        assert!(script_hash(&json!(good.to_uppercase())).is_ok());
        assert!(script_hash(&json!(format!("8b 01{}", &good[4..]))).is_ok());
        assert_eq!(
            script_hash(&json!("abc")).unwrap_err().message,
            "abc is not a valid script hash"
        );
        assert_eq!(
            tx_hash(&json!(1)).unwrap_err().message,
            "1 should be a transaction hash"
        );
        assert_eq!(hex_blob(&json!("")).unwrap(), Vec::<u8>::new());
        assert!(hex_blob(&json!("abc")).is_err());
        assert!(hex_blob(&json!("ab cd")).is_err());
        assert_eq!(
            hex_blob(&json!("zz")).unwrap_err().message,
            "zz should be a hex string"
        );
        assert!(hex_odd(&json!("abc")).is_ok());
        assert!(boolean("verbose", &json!(1)).unwrap());
        assert!(!boolean("verbose", &json!(0.0)).unwrap());
        assert_eq!(
            boolean("merkle", &json!("yes")).unwrap_err().message,
            "\"merkle\" must be a boolean"
        );
    }
}
