// Package config parses and validates the plugins' network configuration: the
// host-local IPAM section (ranges, routes, dataDir, resolvConf, requested
// addresses) and the bridge network keys, filling in the reference plugins'
// defaults. Every error is a CNI error whose message names the offending key
// and value; configuration is fully validated before anything is changed.
package config
