//! The `pc-qualify` binary: parse, dispatch, map errors to exit codes. Everything else is the library.

use clap::Parser;
use pc_qualify::cli::{self, Cli};
use pc_qualify::domain::error::{ChainExt, ExitCode};

fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    cli::init_logging(&args.log);
    // The simulator serves many connections and gets every core; a working command spends its
    // time waiting on the network, and one thread avoids cross-thread wake-ups on every row.
    let mut builder = match args.command {
        #[cfg(feature = "sandbox")]
        cli::Command::Simulate(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pc-qualify: error: cannot start the async runtime: {err}");
            return ExitCode::Usage.into();
        }
    };
    let code = match runtime.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(err) => {
            // Only a closed pipe on standard output maps to 0: the reader's choice, not an error.
            if err.exit_code() != ExitCode::Success {
                eprintln!("pc-qualify: error: {}", err.chain());
            }
            err.exit_code()
        }
    };
    // Blocking reader/writer threads may still sit in a read of standard input; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code.into()
}
