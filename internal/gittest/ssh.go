package gittest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SSHServer is Debian's sshd on a loopback port serving Git over ssh.
type SSHServer struct {
	// Addr is 127.0.0.1:PORT.
	Addr string
	// User logs in with ClientKey (a private key, PEM).
	User      string
	ClientKey []byte
	// KnownHosts is the known_hosts line of the server's host key.
	KnownHosts []byte
	Root       string
}

// StartSSH runs sshd until the test ends: key authentication only, for the
// user running the test. `make test` installs openssh-server.
func StartSSH(t testing.TB) *SSHServer {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/sshd"); serr != nil {
			t.Fatal("sshd is not installed: run `make test` (it installs openssh-server)")
		}
		sshd = "/usr/sbin/sshd"
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keygen := func(path string) {
		Run(t, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path)
	}
	keygen(filepath.Join(dir, "host_key"))
	keygen(filepath.Join(dir, "client_key"))
	clientPub, _ := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), clientPub, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cfg := fmt.Sprintf(`Port %s
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
SetEnv PATH=%s
`, port, filepath.Join(dir, "host_key"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"), os.Getenv("PATH"))
	cfgFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfgFile)
	logFile, _ := os.Create(filepath.Join(dir, "sshd.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start sshd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logFile.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("sshd did not come up: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hostPub, _ := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	fields := strings.Fields(string(hostPub))
	key, _ := os.ReadFile(filepath.Join(dir, "client_key"))
	return &SSHServer{Addr: addr, User: u.Username, ClientKey: key, Root: filepath.Join(dir, "repos"),
		KnownHosts: []byte(fmt.Sprintf("[127.0.0.1]:%s %s %s\n", port, fields[0], fields[1]))}
}

// NewRepo makes an empty bare repository and returns its ssh:// URL.
func (s *SSHServer) NewRepo(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(s.Root, name)
	Run(t, "", "git", "init", "-q", "--bare", "-b", "main", dir)
	return fmt.Sprintf("ssh://%s@%s%s", s.User, s.Addr, dir)
}
