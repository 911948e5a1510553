"""Structure guidance: control maps made from frames (``annotators``), for the ControlNets the pipelines run."""
