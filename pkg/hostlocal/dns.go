package hostlocal

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/flatcni/plugins/pkg/safefs"
)

// maxResolvConf bounds what is read of resolvConf (the C library reads far
// less of a resolv.conf).
const maxResolvConf = 1 << 20

// readResolvConf reads a regular file of at most maxResolvConf bytes,
// refusing a FIFO or device in its place without opening it (safefs.ReadPath:
// no writer of the FIFO let through, no driver's open run). Symbolic
// links are followed: the path is the administrator's, and /etc/resolv.conf
// is often one.
func readResolvConf(path string) ([]byte, error) {
	return safefs.ReadPath(path, maxResolvConf)
}

// ParseResolvConf reads the nameserver, domain, search and options lines of a
// resolv.conf-format file.
func ParseResolvConf(path string) (types.DNS, error) {
	var dns types.DNS
	b, err := readResolvConf(path)
	if err != nil {
		return dns, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			dns.Nameservers = append(dns.Nameservers, fields[1])
		case "domain":
			dns.Domain = fields[1]
		case "search":
			dns.Search = append(dns.Search, fields[1:]...)
		case "options":
			dns.Options = append(dns.Options, fields[1:]...)
		}
	}
	return dns, sc.Err()
}
