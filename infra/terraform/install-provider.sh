#!/usr/bin/env bash
# Puts terraform-provider-weir in a Terraform filesystem mirror and writes a
# CLI configuration that installs weir.dev/weir/weir from it (offline; no
# registry is asked), so that `terraform init` works with
#
#   terraform { required_providers { weir = { source = "weir.dev/weir/weir" } } }
#
# Usage: infra/terraform/install-provider.sh [MIRROR_DIR] [PROVIDER_BINARY]
#   MIRROR_DIR       default ~/.terraform.d/weir-mirror
#   PROVIDER_BINARY  default: built with cargo (target/.../terraform-provider-weir)
# Prints the CLI configuration's path: export TF_CLI_CONFIG_FILE=<it>.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
mirror="${1:-$HOME/.terraform.d/weir-mirror}"
bin="${2:-}"
if [ -z "$bin" ]; then
  (cd "$here" && cargo build --quiet --bin terraform-provider-weir >&2)
  target="${CARGO_TARGET_DIR:-$here/target}"
  bin="$target/debug/terraform-provider-weir"
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) arch="$(uname -m)" ;;
esac
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
dir="$mirror/weir.dev/weir/weir/$version/${os}_$arch"
mkdir -p "$dir"
# A copy, not a link: Terraform hashes the directory's files.
cp -f "$bin" "$dir/terraform-provider-weir_v$version"
config="$mirror/terraformrc"
cat > "$config" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["weir.dev/*/*"]
  }
  direct {
    exclude = ["weir.dev/*/*"]
  }
}
RC
echo "$config"
