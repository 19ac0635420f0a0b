"""The serial protocol between the door microcontroller and the agent. Stands alone: never imports `edge`."""
