//! The `fulmen` binary entry point: parses the command line and hands over to
//! [`fulmen_node::cli`]. Must never contain logic of its own.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = fulmen_node::cli::Cli::parse();
    fulmen_node::cli::main(cli)
}
