//! `signoff`: the server binary, a thin wrapper over
//! [`signoff_host::server::cli`].

use std::process::ExitCode;

use clap::Parser;
use signoff_host::server::cli::{Cli, Command, serve};

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => match serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("signoff: {error}");
                ExitCode::FAILURE
            }
        },
    }
}
