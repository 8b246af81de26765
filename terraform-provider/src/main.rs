//! `terraform-provider-weir`: started by Terraform, never by hand.

fn main() -> anyhow::Result<()> {
    if std::env::var_os("TF_PLUGIN_MAGIC_COOKIE").is_none() {
        eprintln!(
            "terraform-provider-weir is a Terraform plugin: Terraform starts it. \
             Install it in a filesystem mirror (infra/terraform/install-provider.sh) and \
             run terraform init."
        );
        std::process::exit(1);
    }
    // tf-provider appends a backtrace to every diagnostic when backtraces
    // are on; a user's RUST_BACKTRACE must not bury Weir's message. Set
    // before any thread exists.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(tf_provider::serve(
            "weir",
            terraform_provider_weir::WeirProvider::default(),
        ))
}
