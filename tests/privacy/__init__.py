# Copyright (c) monai-fair contributors
# Licensed under the Apache License, Version 2.0
