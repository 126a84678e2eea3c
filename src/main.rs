//! The `alliance` command: a thin wrapper over the library's CLI.

fn main() -> std::process::ExitCode {
    alliance_warehouse::cli::main()
}
