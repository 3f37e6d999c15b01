package hostlocal

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
)

// maxResolvConf bounds what is read of resolvConf (the C library reads far
// less of a resolv.conf).
const maxResolvConf = 1 << 20

// readResolvConf reads a regular file of at most maxResolvConf bytes. It is
// opened without blocking, so that a FIFO or device in its place is refused,
// not waited on. Symbolic links are followed: the path is the
// administrator's, and /etc/resolv.conf is often one.
func readResolvConf(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s), refusing it", path, fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxResolvConf+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxResolvConf {
		return nil, fmt.Errorf("%s is larger than %d bytes, refusing it", path, maxResolvConf)
	}
	return b, nil
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
