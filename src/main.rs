//! The `anode` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    match anode::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            anode::output::print_error(&error);
            ExitCode::FAILURE
        }
    }
}
