use usher::{cli, telemetry};

#[actix_web::main]
async fn main() {
    let cli = cli::parse();
    telemetry::init();
    if let Err(error) = cli::run(cli).await {
        eprintln!("usher: {error:#}");
        std::process::exit(1);
    }
}
