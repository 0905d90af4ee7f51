//! Build script of the agent package: the server package's `build.rs`
//! (the git commit for `--version`), so that both binaries name the same
//! commit the same way.

#[path = "../build.rs"]
mod shared;

fn main() {
    shared::main();
}
