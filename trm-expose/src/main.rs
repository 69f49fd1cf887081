fn main() {
    terrarium_core::cli::main(trm_expose::run)
}
