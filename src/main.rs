use clap::Parser;

#[global_allocator]
static ALLOCATOR: labgate::Allocator = labgate::Allocator;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = labgate::cli::Cli::parse();
    let _logs = labgate::telemetry::init();
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("labgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
