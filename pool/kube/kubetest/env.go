// Package kubetest runs a real etcd and kube-apiserver for tests, and a
// small node agent that plays the kubelet's (and the scheduler's) part for
// pods: see Node. The binaries are built from source through the Go module
// proxy, once, by deploy/testenv/k8s-bin.sh, and cached.
package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"crypto/tls"
	"encoding/base64"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gofastapi/gofastapi/deploy/testenv"
)

// Env is a running etcd and kube-apiserver.
type Env struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	Client kubernetes.Interface
	// Kubeconfig is a kubeconfig file for the same identity.
	Kubeconfig string
	Dir        string

	procs []*proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd was reaped
}

// Binaries builds etcd and kube-apiserver if they are not cached yet and
// returns their directory (deploy/testenv/k8s-bin.sh prints it).
func Binaries() (string, error) {
	dir, err := testenv.Run("k8s-bin.sh")
	if err != nil {
		return "", fmt.Errorf("kubetest: build etcd and kube-apiserver: %w", err)
	}
	return dir, nil
}

// Start starts etcd and kube-apiserver with their data in dir and waits
// until the API server is ready. Stop stops them.
func Start(dir string) (*Env, error) {
	bin, err := Binaries()
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir}
	if err := e.start(bin); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) start(bin string) error {
	dir := e.Dir
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	ep, pp, ap := ports[0], ports[1], ports[2]
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ep)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", pp)
	if err := e.run(filepath.Join(bin, "etcd"), "etcd.log",
		"--data-dir="+filepath.Join(dir, "etcd"), "--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync=true", "--log-level=warn"); err != nil {
		return err
	}
	if err := waitHTTP(http.DefaultClient, etcdURL+"/health", "", 60*time.Second, e.procs[0]); err != nil {
		return fmt.Errorf("kubetest: etcd: %w (log: %s)", err, filepath.Join(dir, "etcd.log"))
	}
	apiURL := fmt.Sprintf("https://127.0.0.1:%d", ap)
	if err := e.run(filepath.Join(bin, "kube-apiserver"), "apiserver.log",
		"--etcd-servers="+etcdURL, "--cert-dir="+filepath.Join(dir, "certs"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ap), "--advertise-address=127.0.0.1",
		"--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=false", "--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount", "--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--service-account-issuer="+apiURL, "--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key")); err != nil {
		return err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	if err := waitHTTP(insecure, apiURL+"/readyz", token, 120*time.Second, e.procs[1]); err != nil {
		return fmt.Errorf("kubetest: kube-apiserver: %w (log: %s)", err, filepath.Join(dir, "apiserver.log"))
	}
	ca := filepath.Join(dir, "certs", "apiserver.crt")
	e.Config = &rest.Config{Host: apiURL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: ca}, QPS: 500, Burst: 1000}
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		return err
	}
	caData, err := os.ReadFile(ca)
	if err != nil {
		return err
	}
	e.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, apiURL, b64(caData), token)
	return os.WriteFile(e.Kubeconfig, []byte(kc), 0o600)
}

func (e *Env) run(path, logName string, args ...string) error {
	logf, err := os.Create(filepath.Join(e.Dir, logName))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kubetest: start %s: %w", path, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	e.procs = append(e.procs, p)
	return nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() {
	for i := len(e.procs) - 1; i >= 0; i-- {
		p := e.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	e.procs = nil
}

// waitHTTP polls url until it answers 200, the process exits, or limit passes.
func waitHTTP(c *http.Client, url, token string, limit time.Duration, p *proc) error {
	exited := p.done
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within %s: %v", limit, last)
		case <-exited:
			return fmt.Errorf("exited before it was ready: %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// insecureTLS is only for polling /readyz before the CA file exists.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }
