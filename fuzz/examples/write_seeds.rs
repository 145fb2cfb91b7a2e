//! Writes the seed corpus of every fuzz target but `frame` (see
//! `src/seeds.rs`) to `DIR/<target>/<name>`, replacing what is there but the
//! inputs fuzz runs found (`regress-*`, which stay):
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example write_seeds -- fuzz/seeds
//!
//! (`frame`'s seeds come from `cargo run -p ipos-wire --example write_fuzz_seeds`.)

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    let seeds = ipos_fuzz::seeds::all();
    let mut targets: Vec<&str> = seeds.iter().map(|s| s.0).collect();
    targets.dedup();
    for t in &targets {
        let d = dir.join(t);
        std::fs::create_dir_all(&d)?;
        // Inputs a fuzz run found (`regress-*`, committed by hand) stay.
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if !e.file_name().to_string_lossy().starts_with("regress-") {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    for (target, name, bytes) in &seeds {
        std::fs::write(dir.join(target).join(name), bytes)?;
    }
    println!(
        "{} seeds for {} targets in {}",
        seeds.len(),
        targets.len(),
        dir.display()
    );
    Ok(())
}
