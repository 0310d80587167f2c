// Package deploy holds daguha's deployment files (compose/, kubernetes/,
// worker-image/) and the tests that hold them to account: the Kubernetes
// manifests' cross-references, the Compose file's shape, make image's
// refusal to build an image without a shell, and (wherever Docker
// answers, unless DAGUHA_DOCKER_TESTS=0) a worker image on a team's base
// and a real Compose cluster that survives the loss of its leader. It
// has no Go code of its own.
package deploy
