//! The operator's small listeners — the admin RPC and the Prometheus endpoint — share one
//! accept loop and one stop handle; only what they do with a connection differs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

/// A listener running in its own task, started by [`SideListener::spawn`].
pub struct SideListener {
    /// where it listens
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SideListener {
    /// Binds `addr` (port 0 picks one) and hands every accepted connection to `serve` in a
    /// task of its own. `what` names the listener in log lines.
    pub async fn spawn<F, Fut>(addr: &str, what: &'static str, serve: F) -> std::io::Result<Self>
    where
        F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(accept_until(listener, what, Arc::new(serve), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(SideListener { addr, stop, task })
    }

    /// Stops listening and closes the open connections (a request still running is cancelled
    /// at its next await); waits until they are closed.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_until<F, Fut>(
    listener: TcpListener,
    what: &'static str,
    serve: Arc<F>,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve(stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}
