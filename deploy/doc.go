// Package deploy holds percorso's deployment: the NATS cluster
// configuration (nats/), the PostgreSQL bootstrap with least-privilege roles
// (postgres/), a docker-compose file, the container image (Dockerfile), and
// Kubernetes manifests with values for the official NATS chart (k8s/).
//
// Nothing here is imported. The package exists for its tests: a deployment
// file that no test reads drifts from the binary it deploys, so the NATS
// configuration is loaded by the server's own parser and started as a
// cluster, the chart values and the image are checked against the module,
// and cmd/percorso checks the compose file and the manifests against the
// flags of `percorso serve` and runs the bootstrap SQL.
package deploy
