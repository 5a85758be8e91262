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
        /// what the engine's error means for the caller, as the engine crate classified it
        kind: ErrorKind,
        /// the engine's own error
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a failure means for the caller, whatever the engine: the one thing the server acts on
/// (wait for space and retry, or stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The filesystem holding the database is full. A write that fails so leaves the store
    /// as it was, and the same write succeeds once space is freed, without reopening.
    NoSpace,
    /// Any other failure of the disk or the filesystem (EIO, a read-only remount, a vanished
    /// directory). Retrying does not help; the store keeps its last committed state.
    Io,
    /// Stored data fails the engine's or anode's validation.
    Corrupt,
    /// Everything else: refused arguments, a database in use, an engine's internal limit.
    Other,
}

impl ErrorKind {
    /// The kind of an operating-system error: ENOSPC and EDQUOT (a full quota is a full disk
    /// to whoever writes) are [`ErrorKind::NoSpace`], the rest [`ErrorKind::Io`].
    pub fn of_io(error: &std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                ErrorKind::NoSpace
            }
            _ => ErrorKind::Io,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::NoSpace => "no space left",
            ErrorKind::Io => "I/O error",
            ErrorKind::Corrupt => "corrupt data",
            ErrorKind::Other => "error",
        })
    }
}

impl Error {
    /// Wraps an engine error that is neither an I/O failure nor corruption
    /// ([`ErrorKind::Other`]).
    pub fn backend<E>(engine: &'static str, source: E) -> Self
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Error::backend_of_kind(engine, ErrorKind::Other, source)
    }

    /// Wraps an engine error the engine crate classified as `kind`.
    pub fn backend_of_kind<E>(engine: &'static str, kind: ErrorKind, source: E) -> Self
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Error::Backend {
            engine,
            kind,
            source: source.into(),
        }
    }

    /// What this failure means for the caller: wait for space, stop on I/O errors or
    /// corruption, or report a misuse.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Backend { kind, .. } => *kind,
            Error::Io { source, .. } => ErrorKind::of_io(source),
            Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::UnknownTable(_)
            | Error::InvalidKey { .. }
            | Error::Open { .. }
            | Error::WrongEngine { .. } => ErrorKind::Other,
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
