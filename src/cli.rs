//! Command-line entry point (filled in as the server grows).

/// Runs the command line.
pub fn main() -> anyhow::Result<()> {
    Ok(())
}
