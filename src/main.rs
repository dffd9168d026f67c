fn main() {
    // The command shim (see `kinds::command::shim`) is this binary started with a marker
    // argument; it must not parse the command line, load configuration or start a runtime.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(overseer::kinds::command::shim::ARG) {
        std::process::exit(overseer::kinds::command::shim::main(&args[2..]));
    }
    std::process::exit(overseer::cli::main());
}
