package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
)

// EnvArgs holds the CNI_ARGS keys the plugins read ("K1=V1;K2=V2"). Keys the
// plugins do not know (K8S_POD_NAME, IgnoreUnknown, ...) are ignored.
type EnvArgs struct {
	IPs []netip.Addr // IP=, comma-separated
	MAC string       // MAC=
}

// ParseEnvArgs parses CNI_ARGS.
func ParseEnvArgs(s string) (EnvArgs, error) {
	var out EnvArgs
	if s == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return out, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: "+pair+": expected KEY=VALUE", "")
		}
		switch k {
		case "IP":
			if v == "" {
				// No address asked for, as with the reference, whose
				// parser takes an empty value for none.
				continue
			}
			for _, one := range strings.Split(v, ",") {
				addr, err := ParseAddrOrPrefix(strings.TrimSpace(one))
				if err != nil {
					return out, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: IP="+one+": not an IP address", "")
				}
				out.IPs = append(out.IPs, addr)
			}
		case "MAC":
			out.MAC = v
		}
	}
	return out, nil
}

// hasEnvArg reports whether CNI_ARGS s has key with a value.
func hasEnvArg(s, key string) bool {
	for _, pair := range strings.Split(s, ";") {
		if k, v, _ := strings.Cut(pair, "="); k == key && strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// withoutEnvArg returns CNI_ARGS without its pairs of key.
func withoutEnvArg(s, key string) string {
	var keep []string
	for _, pair := range strings.Split(s, ";") {
		if k, _, _ := strings.Cut(pair, "="); k != key {
			keep = append(keep, pair)
		}
	}
	return strings.Join(keep, ";")
}

// ParseAddrOrPrefix accepts "10.1.2.3" or "10.1.2.3/24" (the address part).
func ParseAddrOrPrefix(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, err
		}
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}

// RefuseOwnNetns fails, with skel's error (code 8, invalid netns), when
// CNI_NETNS is the plugin's own network namespace, unless
// CNI_NETNS_OVERRIDE allows it; own tells whether a path is the plugin's
// namespace, without blocking (a stat, not an open: a FIFO there must not
// hang the call).
func RefuseOwnNetns(args *skel.CmdArgs, own func(path string) (bool, error)) error {
	if args.Netns == "" || args.NetnsOverride == "1" || strings.EqualFold(args.NetnsOverride, "true") {
		return nil
	}
	if is, err := own(args.Netns); err == nil && is {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q: plugin's netns and netns from CNI_NETNS should not be the same", args.Netns), "")
	}
	return nil
}

// CheckEnvNames validates CNI_CONTAINERID and CNI_IFNAME as skel does for
// ADD, CHECK and DEL, but names the variable and its value in the error
// (skel's says only what is wrong: "interface name is too long"). Missing
// variables are left to skel, whose error lists them.
func CheckEnvNames(getenv func(string) string) *types.Error {
	switch getenv("CNI_COMMAND") {
	case "ADD", "CHECK", "DEL":
	default:
		return nil
	}
	for _, v := range []struct {
		name     string
		validate func(string) *types.Error
	}{
		{"CNI_CONTAINERID", utils.ValidateContainerID},
		{"CNI_IFNAME", utils.ValidateInterfaceName},
	} {
		val := getenv(v.name)
		if val == "" {
			continue
		}
		if err := v.validate(val); err != nil {
			return types.NewError(err.Code, fmt.Sprintf("%s %q: %s", v.name, val, err.Msg), err.Details)
		}
	}
	return nil
}
