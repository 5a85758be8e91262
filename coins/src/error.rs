use std::fmt;

/// Errors of the coin layer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// Untrusted bytes did not parse. `offset` is the byte offset inside the buffer
    /// given to the parser (the raw block or transaction).
    #[error("malformed data{}: {what} at byte offset {offset}", HeightSuffix(*.height))]
    Malformed {
        height: Option<u32>,
        offset: usize,
        what: &'static str,
    },
    /// The block-hash algorithm is not implemented or its cargo feature is off.
    #[error("block hash algorithm {0} is not available in this build")]
    HashUnavailable(String),
    /// `lookup` found no such network.
    #[error("unknown network COIN={coin} NET={net}; {hint}")]
    UnknownNetwork {
        coin: String,
        net: String,
        hint: String,
    },
    /// A network definition (TOML) is invalid.
    #[error("invalid network definition: {0}")]
    Config(String),
    /// An address could not be decoded for this network.
    #[error("invalid address {0}")]
    Address(String),
    /// The family cannot do this (e.g. Litecoin MWEB transactions with MWEB data).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

struct HeightSuffix(Option<u32>);

impl fmt::Display for HeightSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(h) => write!(f, " in block at height {h}"),
            None => Ok(()),
        }
    }
}

impl Error {
    /// Attaches a block height to a parse error.
    pub(crate) fn at_height(self, height: Option<u32>) -> Self {
        match self {
            Error::Malformed { offset, what, .. } => Error::Malformed {
                height,
                offset,
                what,
            },
            other => other,
        }
    }
}
