//! A tracing subscriber whose filter can be replaced at run time (the admin `log` command's
//! `level`), and the handle that replaces it.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Why a log filter could not be set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The directive does not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    InvalidFilter {
        /// what was given
        filter: String,
        /// the parser's complaint
        reason: String,
    },
    /// The subscriber the handle belonged to is gone.
    #[error("the logger is gone: {0}")]
    Gone(String),
    /// A global subscriber was already installed.
    #[error("a logger is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Replaces the log filter of the subscriber it came from. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogControl {
    /// The filter now in force, as directives.
    pub fn current(&self) -> Result<String, LogError> {
        self.handle
            .with_current(|f| f.to_string())
            .map_err(|e| LogError::Gone(e.to_string()))
    }

    /// Replaces the filter with `filter` (`debug`, `info,anode::index=trace`…); returns the
    /// previous one.
    pub fn set(&self, filter: &str) -> Result<String, LogError> {
        let new = parse_filter(filter)?;
        let previous = self.current()?;
        self.handle
            .reload(new)
            .map_err(|e| LogError::Gone(e.to_string()))?;
        tracing::info!(filter, previous = %previous, "log filter changed");
        Ok(previous)
    }
}

fn parse_filter(filter: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::try_new(filter).map_err(|e| LogError::InvalidFilter {
        filter: filter.to_string(),
        reason: e.to_string(),
    })
}

/// A formatting subscriber writing to `writer` through a reloadable `filter`, and its
/// [`LogControl`]. Install it globally with [`init_logging`], or per thread with
/// `tracing::subscriber::with_default` (tests).
pub fn reloadable_subscriber<W>(
    filter: &str,
    writer: W,
) -> Result<(impl tracing::Subscriber + Send + Sync, LogControl), LogError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (layer, handle) = reload::Layer::new(parse_filter(filter)?);
    let subscriber = tracing_subscriber::registry()
        .with(layer)
        .with(tracing_subscriber::fmt::layer().with_writer(writer));
    Ok((subscriber, LogControl { handle }))
}

/// Installs the process's logger: to stderr, filtered by `filter`, with a handle to change the
/// filter later.
pub fn init_logging(filter: &str) -> Result<LogControl, LogError> {
    let (subscriber, control) = reloadable_subscriber(filter, std::io::stderr)?;
    subscriber
        .try_init()
        .map_err(|e| LogError::AlreadyInstalled(e.to_string()))?;
    Ok(control)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer tests read back.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub Arc<Mutex<Vec<u8>>>);

    impl Captured {
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn a_new_filter_takes_effect() {
        let out = Captured::default();
        let (subscriber, control) = reloadable_subscriber("warn", out.clone()).expect("filter");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("first-info-line");
            assert_eq!(control.set("info").expect("valid"), "warn");
            tracing::info!("second-info-line");
            tracing::debug!("first-debug-line");
            assert_eq!(control.current().expect("alive"), "info");
        });
        let text = out.text();
        assert!(!text.contains("first-info-line"), "{text}");
        assert!(text.contains("second-info-line"), "{text}");
        assert!(!text.contains("first-debug-line"), "{text}");
        // The handle does not keep the subscriber alive.
        assert!(matches!(control.current(), Err(LogError::Gone(_))));
    }

    #[test]
    fn an_invalid_filter_is_refused_and_the_old_one_kept() {
        let (_subscriber, control) =
            reloadable_subscriber("info", Captured::default()).expect("filter");
        assert!(matches!(
            control.set("anode=loud"),
            Err(LogError::InvalidFilter { .. })
        ));
        assert_eq!(control.current().expect("alive"), "info");
    }
}
