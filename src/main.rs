//! The `berth` binary: parse arguments, run, map the error to an exit code.

fn main() {
    // The supervisor every `up` starts and waits for skips building the whole command
    // line (a third of a millisecond); any other form goes through it.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let [_, command, dir] = args.as_slice()
        && command == berth::cli::SUPERVISE
    {
        let printer = berth::output::Printer::new(false, false);
        exit_on_error(
            berth::commands::supervise(std::path::Path::new(dir)),
            printer,
        );
        return;
    }
    let cli = <berth::cli::Cli as clap::Parser>::parse_from(args);
    let printer = berth::output::Printer::new(cli.global.json, cli.global.quiet);
    let result = berth::run(cli, &printer);
    exit_on_error(result, printer);
}

fn exit_on_error(result: berth::error::Result<()>, printer: berth::output::Printer) {
    if let Err(error) = result {
        printer.error(&error.render(printer.colour()));
        drop(printer);
        std::process::exit(error.exit_status());
    }
}
