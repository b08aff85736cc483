//! `twitcherctl`: the command line client of twitcher (commands arrive with the CLI issue).

use clap::Parser;

/// Command line of twitcherctl; the full command set comes with the CLI issue.
#[derive(Parser)]
#[command(
    name = "twitcherctl",
    version,
    about = "Command line client for the twitcher security proxy"
)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("twitcherctl: no commands are implemented yet");
    std::process::exit(1);
}
