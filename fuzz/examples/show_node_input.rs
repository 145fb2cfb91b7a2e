//! Prints a `node` input as the operations it decodes to, one per line, with
//! the virtual time and every node counter that changed, then runs the
//! final checks (a failing input panics as the fuzz target would):
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example show_node_input -- FILE

use ipos_fuzz::farm::{Farm, Op, MAX_OPS};
use ipos_fuzz::input::Reader;

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .expect("usage: show_node_input FILE");
    let data = std::fs::read(path)?;
    let mut farm = Farm::new();
    let mut r = Reader::new(&data);
    let mut before = farm.summary();
    let mut ops = 0;
    while !r.is_empty() && ops < MAX_OPS {
        let op = Op::read(&mut r);
        farm.apply(op);
        ops += 1;
        let after = farm.summary();
        println!("{ops:3} {op:?}");
        if after != before {
            println!("   {}", after.trim());
            before = after;
        }
    }
    farm.finish();
    println!("finished: the checks passed{}", farm.summary());
    Ok(())
}
