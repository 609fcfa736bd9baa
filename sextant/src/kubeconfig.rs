//! The admin kubeconfig written to `DATA_DIR/kubeconfig.yaml` for `kubectl --kubeconfig`.

use base64::Engine;

pub fn admin(server_url: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sextant
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: sextant
  context:
    cluster: sextant
    user: admin
current-context: sextant
preferences: {{}}
"
    )
}
