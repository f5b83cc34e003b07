"""prepull-agent: keeps the Kubernetes Image Puller list current for OpenShift AI."""
