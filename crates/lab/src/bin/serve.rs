//! The lab's built-in responder as its own program (see `bulkhead_lab::responder`), for
//! this crate's tests; the `bulkhead` binary runs the same code as `bulkhead lab serve`.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(bulkhead_lab::responder::main(std::env::args().skip(1)));
}
