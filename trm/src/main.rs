fn main() {
    terrarium_core::cli::main(trm::run)
}
