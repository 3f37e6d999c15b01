// Command serve is the only program in the image of the podman test
// (TestPodman), built static:
//
//	serve NAME PORT    answer every TCP connection and UDP datagram on PORT
//	                   with "NAME <peer address>", as portsServe does
//	dial PROTO ADDR    send a request to ADDR (tcp or udp), print the answer
//	mac IFNAME         print the interface's MAC address
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		if len(os.Args) != 4 {
			usage()
		}
		err = serve(os.Args[2], os.Args[3])
	case "dial":
		if len(os.Args) != 4 {
			usage()
		}
		err = dial(os.Args[2], os.Args[3])
	case "mac":
		if len(os.Args) != 3 {
			usage()
		}
		var ifc *net.Interface
		if ifc, err = net.InterfaceByName(os.Args[2]); err == nil {
			fmt.Println(ifc.HardwareAddr)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: serve serve NAME PORT | dial tcp|udp ADDR | mac IFNAME")
	os.Exit(2)
}

func serve(name, port string) error {
	// A test killed half way leaves no server running for long.
	time.AfterFunc(10*time.Minute, func() { os.Exit(0) })
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s %s", name, from.(*net.UDPAddr).AddrPort().Addr().Unmap())), from)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		fmt.Fprintf(c, "%s %s", name, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
		c.Close()
	}
}

func dial(proto, addr string) error {
	c, err := net.DialTimeout(proto, addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b []byte
	if proto == "udp" {
		if _, err := c.Write([]byte("?")); err != nil {
			return err
		}
		b = make([]byte, 512)
		n, err := c.Read(b)
		if err != nil {
			return err
		}
		b = b[:n]
	} else if b, err = io.ReadAll(c); err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
