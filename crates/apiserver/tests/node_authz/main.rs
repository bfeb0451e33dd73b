//! What a node credential (`system:node:n1` in `system:nodes`) may do through the
//! real server: HTTPS, client certificates, authentication, the node
//! authorizer, RBAC, NodeRestriction admission and the TokenRequest handler.
//! Each probe is one Kubernetes refuses; the positive cases are what a kubelet
//! needs.
mod cluster;
mod reads;
mod tokens;
mod writes;
