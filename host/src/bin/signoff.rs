//! `signoff`: the server binary, a thin wrapper over
//! [`signoff_host::server::cli`].

use std::process::ExitCode;

use clap::Parser;
use signoff_host::audit_cli::verify_file;
use signoff_host::server::cli::{AuditCommand, Cli, Command, serve};

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => match serve(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("signoff: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Audit(AuditCommand::Verify { file }) => {
            let verdict = verify_file(&file);
            println!("{}: {}", file.display(), verdict.describe());
            verdict.exit_code()
        }
    }
}
