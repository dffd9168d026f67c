fn main() {
    std::process::exit(overseer::cli::main());
}
