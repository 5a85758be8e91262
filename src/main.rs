//! The `anode` binary.

fn main() -> anyhow::Result<()> {
    anode::cli::main()
}
