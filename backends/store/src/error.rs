use std::path::PathBuf;

/// Result alias for storage operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error a store can return. Engine-specific failures are boxed in [`Error::Backend`] so
/// callers handle one type whatever engine is compiled in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A table name that was not declared when the store was opened.
    #[error("unknown table `{0}` (tables are declared when the store is opened)")]
    UnknownTable(String),

    /// A key that is empty or longer than [`crate::MAX_KEY_LEN`].
    #[error("invalid key of {len} bytes for table `{table}`: keys must be 1..={max} bytes")]
    InvalidKey {
        /// table the key was written to
        table: String,
        /// its length
        len: usize,
        /// the limit
        max: usize,
    },

    /// The path cannot hold a database: it is a file, is not writable, or holds another
    /// engine's files.
    #[error("cannot open database at {path}: {reason}")]
    Open {
        /// the database directory
        path: PathBuf,
        /// what is wrong, in words an operator can act on
        reason: String,
    },

    /// The directory holds a database made by a different engine.
    #[error(
        "the database at {path} was created by the {found} engine, not {wanted}; \
         set db_engine = \"{found}\" (DB_ENGINE={found}) or point db_directory at an empty directory"
    )]
    WrongEngine {
        /// the database directory
        path: PathBuf,
        /// engine recorded in the directory
        found: String,
        /// engine asked for
        wanted: String,
    },

    /// Stored data that fails validation.
    #[error("corrupt data: {0}")]
    Corrupt(String),

    /// An I/O error outside the engine (marker files, directory creation).
    #[error("I/O error on {path}: {source}")]
    Io {
        /// the path involved
        path: PathBuf,
        /// the underlying error
        #[source]
        source: std::io::Error,
    },

    /// An error reported by the engine itself.
    #[error("{engine}: {source}")]
    Backend {
        /// engine name (`rocksdb`, `lmdb`, `sqlite`, `memory`)
        engine: &'static str,
        /// the engine's own error
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Wraps an engine error.
    pub fn backend<E>(engine: &'static str, source: E) -> Self
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Error::Backend {
            engine,
            source: source.into(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
