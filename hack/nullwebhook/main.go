// Command nullwebhook answers every AdmissionReview POSTed to /validate
// with a fixed "allowed" response, over HTTPS, doing nothing else: the
// floor that make bench-load measures next to ward serve, so that its
// latency figures show what the machine and the load tool cost alone.
//
//	nullwebhook -addr 127.0.0.1:9443 -cert serving.crt -key serving.key
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9443", "address to listen on")
	cert := flag.String("cert", "", "PEM serving certificate")
	key := flag.String("key", "", "PEM private key of the certificate")
	flag.Parse()
	// The fixture's uid is not echoed: the load tool checks only that the
	// body says allowed.
	resp := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}`)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /validate", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, 4<<20)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(resp)
	})
	srv := &http.Server{Addr: *addr, Handler: mux}
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}
