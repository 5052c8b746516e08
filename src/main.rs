use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = eventgate::cli::Cli::parse();
    match eventgate::commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("eventgate: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
