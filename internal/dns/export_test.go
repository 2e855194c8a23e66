package dns

// NewServers returns a resolver asking servers in turn, as New does with
// those of /etc/resolv.conf.
func NewServers(servers []string, opts Options) *Resolver { return newResolver(servers, opts) }

// SystemServers returns the servers a resolv.conf file names.
var SystemServers = systemServers
