//! Local emulator of the cloud APIs, for tests, benchmarks and the demo.

/// Command-line arguments of `multicloud-ecs emulator`.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: std::net::SocketAddr,
}

/// Serves the emulator until interrupted.
pub async fn run(_args: EmulatorArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("the emulator is not built yet".into())
}
