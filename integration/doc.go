// Package integration holds end-to-end tests of the built plugin binaries.
// Tests that need root run the plugins inside a throwaway "node" network
// namespace, with containers in namespaces of their own, and remove all they
// made, even on failure. They drive the binaries as runtimes do: through
// cnitool, through libcni, by exec with the CNI_* environment, and through
// containerd's CRI plugin (cri_test.go: a containerd of its own inside the
// node namespace, driven with crictl as the kubelet drives it).
package integration
