// A Rust crasher built with `-C panic=abort`: `parse_port` panics on bad input, and the panic
// aborts the process (SIGABRT) through std's panic machinery and libc's abort().
//   panic-crash port    panics in parse_port <- main
//   panic-crash index   a different bug: out-of-bounds index in pick <- main
use std::hint::black_box;

#[inline(never)]
fn parse_port(text: &str) -> u16 {
    text.parse().expect("port must be a number")
}

#[inline(never)]
fn pick(values: &[u32], i: usize) -> u32 {
    values[i]
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "index" {
        let v = black_box(vec![1, 2, 3]);
        println!("{}", pick(&v, black_box(7)));
    } else {
        println!("{}", parse_port(black_box("eighty")));
    }
}
