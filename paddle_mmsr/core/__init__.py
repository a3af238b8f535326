"""The paddle-free floor both flows (training and reconstruction) stand on."""
