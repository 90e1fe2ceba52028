use usher::{cli, telemetry};

#[actix_web::main]
async fn main() {
    return_large_blocks_to_the_system();
    let cli = cli::parse();
    telemetry::init();
    if let Err(error) = cli::run(cli).await {
        eprintln!("usher: {error:#}");
        std::process::exit(1);
    }
}

/// Each Argon2 check allocates a 19 MiB block. glibc raises its mmap
/// threshold after the first such block is freed, and later ones then stay
/// in the hashing threads' heap arenas, which fragment: a server doing
/// sign-ins grew to over 500 MiB. A fixed threshold keeps every such block
/// an mmap that goes back to the system when freed (about 60 MiB measured).
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
