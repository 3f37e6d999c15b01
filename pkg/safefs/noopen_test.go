package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A FIFO where a regular file should be must be refused without being
// opened: opening it, even with O_NONBLOCK and closed at once, is seen by
// the other end (a writer blocked in open(2) is let through). Tells so by
// a writer waiting in open(2) on the FIFO. ReadPath, which follows links,
// likewise: the FIFO named directly or through a link.
func TestNotRegularIsNeverOpened(t *testing.T) {
	for _, tt := range []struct {
		name string
		call func(d *Dir, name string) error
	}{
		{"ReadFile", func(d *Dir, name string) error { _, err := d.ReadFile(name, 64); return err }},
		{"OpenFile O_RDWR|O_CREAT", func(d *Dir, name string) error {
			f, err := d.OpenFile(name, unix.O_RDWR|unix.O_CREAT, 0o600)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"ReadPath", func(d *Dir, name string) error {
			_, err := ReadPath(filepath.Join(d.Path(), name), 64)
			return err
		}},
		{"ReadPath through a link", func(d *Dir, name string) error {
			link := filepath.Join(d.Path(), "link")
			if err := os.Symlink(name, link); err != nil {
				return err
			}
			_, err := ReadPath(link, 64)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, "f")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			opened := make(chan struct{})
			go func() {
				// Blocks until a reader opens the FIFO.
				if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
					f.Close()
				}
				close(opened)
			}()
			time.Sleep(100 * time.Millisecond) // the writer is in open(2)
			err = tt.call(d, "f")
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("error %v, want ErrNotRegular", err)
			}
			select {
			case <-opened:
				t.Errorf("the FIFO was opened (its writer got through open(2))")
			case <-time.After(300 * time.Millisecond):
				// Let the writer go.
				if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					<-opened
					f.Close()
				}
			}
		})
	}
}
