fn main() {
    terrarium_core::cli::main(trm_gate::run)
}
